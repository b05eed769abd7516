import sys

from ttt_train.study.main import main

sys.exit(main())
