"""Training: the reference model's masked-diffusion trainer (``dllm train``) and certainty-forcing distillation."""
