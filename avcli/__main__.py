from avcli.cli.main import run

run()
