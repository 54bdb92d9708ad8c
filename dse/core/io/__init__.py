"""Files: CIFAR-10 in any of its forms, checkpoints, atomic writes, and the folders a path may point into."""
