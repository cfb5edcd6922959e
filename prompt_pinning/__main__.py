import sys

if sys.argv[1:2] == ["report"]:  # python -m prompt_pinning report RUN_DIR
    from .report_command import report_main

    sys.exit(report_main(sys.argv[2:]))
if sys.argv[1:2] == ["sweep"]:  # python -m prompt_pinning sweep PROMPTS.txt --ray ADDRESS
    from .distributed.sweep import sweep_main

    sys.exit(sweep_main(sys.argv[2:]))
from .cli import main

sys.exit(main())
