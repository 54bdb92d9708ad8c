from dse.cli import main

raise SystemExit(main())
