from avcli.cli.main import main

main()
