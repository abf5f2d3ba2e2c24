from coreset_lab.cli import main

main()
