import ArgumentParser

Loom.main()
