from mace.cli import main

main()
