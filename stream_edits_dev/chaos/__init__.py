"""`stream-edits chaos`: a fault suite against a real local broker, with a scoreboard.

The modules, smallest first:
- `plan`: which faults, in which order, over which slice of the input, at which moment;
- `inputs`: the synthetic workload with poison records mixed in, each record given a producer;
- `producers`: the producers payers use (aiokafka keyed by member_id, unkeyed, keyed by
  claim_id; librdkafka when confluent-kafka is installed), fed at a steady rate;
- `cluster`: the run's own broker and worker processes (kill -9, restart, join, leave);
- `verify`: the output topics read incrementally, the group's lag, and the score of each step
  against `stream-edits check` on the same input;
- `scoreboard`: rows, the table, the JSON;
- `runner`: the command itself.
"""
