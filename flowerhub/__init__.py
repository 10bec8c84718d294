"""FlowerHub: the `flowerhub` command line and the project's local Kafka launcher."""
