"""Training loops and model selection, one family per module (nothing is re-exported here):

- ``result``: :class:`~casebook.training.result.TrainingResult`, what every training loop returns;
- ``torch_loop``: the in-memory PyTorch loop, evaluation, prediction and its benchmark;
- ``mlp_classifier``: the torch MLP as a scikit-learn estimator, with pickle-free persistence;
- ``search``: scikit-learn hyperparameter searches and the synthetic-classification recipe;
- ``holdout_search``: XGBoost searches early-stopped on a validation holdout, and two-model blends;
- ``keras_loops``: Keras fits (generic, the housing regressor, the redshift classifiers);
- ``xray``: the pneumonia case's training on cached backbone features, and predictions over tf.data.
"""
