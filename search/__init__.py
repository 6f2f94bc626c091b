"""The study: search space, Tuner + OptunaSearch + ASHA, predicting, reports, and the visionsweep command line."""
