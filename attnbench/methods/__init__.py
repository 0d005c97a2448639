"""Built-in methods, one file each, with their contract (contract: Method, Shape, param) and
registry (registry). The registry loads a method's module when it is first used, so the names
live here: adding a method is its file plus one line below.

May import attnbench.errors only (and torch): every other package may use a method.
"""

# name -> "module:Class" under attnbench.methods
BUILTIN = {
    "full": "full:Full",
    "full-explicit": "full:FullExplicit",
    "kernelized": "kernelized:Kernelized",
    "skyformer": "skyformer:Skyformer",
    "sbm": "sbm:SBM",
    "smartbird": "smartbird:SmartBird",
    "nystromformer": "nystromformer:Nystromformer",
    "performer": "performer:Performer",
    "linformer": "linformer:Linformer",
    "linear": "linear:Linear",
    "reformer": "reformer:Reformer",
    "bigbird": "bigbird:BigBird",
    "longformer": "longformer:Longformer",
    "sparse_transformer": "sparse_transformer:SparseTransformer",
    "informer": "informer:Informer",
    "sdpa-flash": "sdpa:SdpaFlash",
    "sdpa-efficient": "sdpa:SdpaEfficient",
    "sdpa-cudnn": "sdpa:SdpaCudnn",
    "sdpa-math": "sdpa:SdpaMath",
    "flex": "flex:Flex",
}

# Public implementations, runnable when their package is installed:
# name -> (package to import, "module:Class", how to install it).
PEERS = {
    "peer-nystrom-attention": ("nystrom_attention", "peers:PeerNystrom", "pip install 'attnbench[peers]'"),
    "peer-performer-pytorch": ("performer_pytorch", "peers:PeerPerformer", "pip install 'attnbench[peers]'"),
    "peer-linformer": ("linformer", "peers:PeerLinformer", "pip install 'attnbench[peers]'"),
    "peer-flash-attn": ("flash_attn", "kernels:PeerFlashAttn", "pip install flash-attn --no-build-isolation (CUDA)"),
    "peer-xformers": ("xformers", "kernels:PeerXformers", "pip install xformers (matching your torch build)"),
}
