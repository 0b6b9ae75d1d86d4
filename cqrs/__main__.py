from cqrs.cli import main

main()
