"""alexnet (244 MB) and vgg11 (531 MB) through ONNX into herd: test_onnx_torchvision.py's checks
(logits within 1e-4 of PyTorch's, the written spec, onnx.checker on herd's export, export -> import
-> export byte-identical; one SGD step from alexnet.onnx against PyTorch's gradient) at 3x224x224:
their adaptive average pools need 6x6 and 7x7 maps, and PyTorch cannot export them at 64x64
("output size that are not factor of input size"). Slow (about 3 minutes on the 2-core VM,
mostly writing and reading half-gigabyte files), hence its own test."""
import os
import subprocess
import sys

env = dict(os.environ, HERD_TORCHVISION_SIZE="224", HERD_TORCHVISION_MODELS="alexnet,vgg11",
           HERD_TORCHVISION_FINETUNE="alexnet")
sys.exit(subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "test_onnx_torchvision.py")],
                        env=env).returncode)
