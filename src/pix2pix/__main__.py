from pix2pix.cli import main

raise SystemExit(main())
