from anode.cli import main

main()
