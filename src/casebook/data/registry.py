"""The dataset registry: every file's name, sha256, download mirrors, licence and citation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    name: str  # file name inside the dataset folder
    sha256: str
    urls: tuple[str, ...] = ()  # official sources, tried in order
    archive_member: str | None = None  # the URL serves an archive holding this member
    archive_sha256: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    folder: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str
    homepage: str
    note: str = ""
    extra: dict = field(default_factory=dict)


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")


_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)


IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_files(shas: tuple[str, ...], bases: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, s, tuple(b + n for b in bases)) for n, s in zip(IDX_NAMES, shas, strict=False))


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        "mnist",
        _idx_files(
            (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
            _MNIST_URLS,
        ),
        licence="CC BY-SA 3.0 (as commonly stated)",
        citation="LeCun, Bottou, Bengio, Haffner (1998), Gradient-based learning applied to document recognition",
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "fashion-mnist",
        _idx_files(
            (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
            _FASHION_URLS,
        ),
        licence="MIT (Zalando SE)",
        citation="Xiao, Rasul, Vollgraf (2017), Fashion-MNIST, arXiv:1708.07747",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "magic-gamma": DatasetInfo(
        "magic-gamma",
        "magic-gamma",
        (
            RemoteFile(
                "magic04.data",
                "e9314b7ebd4b4b59a3b3d65f7316663963777b16a46786877651dbbaa640b36a",
                ("https://archive.ics.uci.edu/ml/machine-learning-databases/magic/magic04.data",),
            ),
        ),
        licence="CC BY 4.0 (UCI)",
        citation="Bock, R. (2004). MAGIC Gamma Telescope. UCI Machine Learning Repository, doi:10.24432/C52C8B",
        homepage="https://archive.ics.uci.edu/dataset/159/magic+gamma+telescope",
    ),
    "california-housing": DatasetInfo(
        "california-housing",
        "california-housing",
        (
            RemoteFile(
                "cal_housing.data",
                "a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214",
                ("https://ndownloader.figshare.com/files/5976036",),
                archive_member="CaliforniaHousing/cal_housing.data",
                archive_sha256="aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
            ),
        ),
        licence="StatLib, no explicit licence (redistributed by scikit-learn)",
        citation="Pace & Barry (1997), Sparse Spatial Autoregressions, Statistics & Probability Letters 33(3)",
        homepage="https://www.dcc.fc.up.pt/~ltorgo/Regression/cal_housing.html",
    ),
    "chest-xray": DatasetInfo(
        "chest-xray",
        "chest-xray",
        (RemoteFile("manifest.csv", "081ff7bf4661123d350031feee833be2774cc4b17c0e3848f526d57b55686af1"),),
        licence="CC BY 4.0",
        citation="Kermany et al. (2018), Cell 172(5):1122-1131; Mendeley Data doi:10.17632/rscbjbr9sj.2",
        homepage="https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia",
        note=(
            "images in chest-xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg (Kaggle layout; val optional). "
            "manifest.csv (sha256 of every image) ships with the offline 224 px copy only; online, the "
            "Kaggle copy is fetched with kagglehub (needs Kaggle credentials)"
        ),
        extra={"kaggle": "paultimothymooney/chest-xray-pneumonia"},
    ),
    "weights": DatasetInfo(
        "weights",
        "weights",
        (
            RemoteFile(
                "mobilenet_2_5_224_tf_no_top.h5",
                "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf",
                (
                    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
                ),
            ),
        ),
        licence="Keras MIT / TF-models Apache-2.0 (ImageNet weights)",
        citation="Howard et al. (2017), MobileNets, arXiv:1704.04861",
        homepage="https://keras.io/api/applications/mobilenet/",
    ),
}
