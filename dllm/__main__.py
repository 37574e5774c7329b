"""``python -m dllm`` = the ``dllm`` console script."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
