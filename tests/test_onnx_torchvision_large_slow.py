"""alexnet (244 MB) and vgg11 (531 MB) through ONNX into herd: test_onnx_torchvision.py's checks
(logits within 1e-4 of PyTorch's, the written spec, onnx.checker on herd's export, export -> import
-> export byte-identical) at 3x224x224:
their adaptive average pools need 6x6 and 7x7 maps, and PyTorch cannot export them at 64x64
("output size that are not factor of input size"). Slow (about 6 minutes on the loaded 2-core VM,
mostly writing and reading half-gigabyte files), hence its own test. No fine-tuning step here: at
224x224 with Kaiming-initialised weights herd's float32 step of alexnet's first convolutions
differs from PyTorch's float64 gradient by up to 2.3% of the largest (its gradients on herd's own
initialisation agree within 5e-4, as test_model_vs_torch checks); the fine-tuning of the other
models is in test_onnx_torchvision."""
import os
import subprocess
import sys

env = dict(os.environ, HERD_TORCHVISION_SIZE="224", HERD_TORCHVISION_MODELS="alexnet,vgg11",
           HERD_TORCHVISION_FINETUNE="")
sys.exit(subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "test_onnx_torchvision.py")],
                        env=env).returncode)
