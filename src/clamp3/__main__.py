from clamp3.cli import main

main()
