"""Stream processors: the command processor and the process managers, exactly-once.

Each worker runs one task (``processors.task``) on the product's own loop over
librdkafka's transactions (``processors.transactional_loop``): a batch is
consumed, each record turned into records to send and state writes by the
task, and everything commits in one Kafka transaction with the offsets. Tasks
orchestrate (decode, read state, decide, evolve, write, send); the business
rules live in ``aggregates`` and never see Kafka.
"""
