"""Built-in methods, one file each. The registry loads a method's module when it is first used,
so the names live here: adding a method is its file plus one line below."""

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
}

# Public implementations, known only when their package is installed: name -> (package, "module:Class").
PEERS = {
    "peer-nystrom-attention": ("nystrom_attention", "peers:PeerNystrom"),
    "peer-performer-pytorch": ("performer_pytorch", "peers:PeerPerformer"),
    "peer-linformer": ("linformer", "peers:PeerLinformer"),
}
