from netpress.cli.main import main

raise SystemExit(main())
