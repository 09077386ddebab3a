"""The networks and estimators of the case studies, one family per module (nothing is re-exported here):

- ``tabular``: the classical scikit-learn / XGBoost zoo with its search spaces, and the tools' pipelines;
- ``mlp``: fully connected networks (the gamma case's torch MLP, California Housing's Keras MLP);
- ``vision``: the image CNNs of MNIST (torch) and Fashion-MNIST (Keras);
- ``redshift_nets``: the 1-D CNN / CNN-GRU / CNN-LSTM / two-input networks on redshift PDFs;
- ``transfer_config``: the typed transfer-learning configuration (built from the pneumonia seed's dict);
- ``transfer``: the transfer-learning model built from that configuration;
- ``efficientnet_lite``: the Keras port of EfficientNet-Lite with its PyTorch ImageNet weights;
- ``summary``: a Keras model described as plain text.

Training loops live in :mod:`casebook.training`; safe file formats in :mod:`casebook.persistence`.
"""
