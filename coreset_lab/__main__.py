from coreset_lab.app.cli import main

main()
