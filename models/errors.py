"""Domain exceptions of the model contract; callers map them to exit codes or HTTP statuses."""


class ModelContractError(Exception):
    """Base class: something about weights, checkpoints or inputs breaks the model contract."""


class WeightsUnavailableError(ModelContractError):
    """Pretrained weights were asked for but cannot be had: none cached and offline, or a file failing its checks."""


class CheckpointError(ModelContractError):
    """A checkpoint is missing, unreadable, corrupt or incompatible with this code."""
