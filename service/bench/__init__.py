"""`sandpit bench`: latency, throughput, CPU and memory of a Sandpit server, measured from outside.

`workloads` says what each scenario sends and what a correct answer is, `load` drives a server with a
bounded number of outstanding calls, `procstat` reads CPU time and RSS of the server's processes from
`/proc`, `bare` runs the same code without the service for comparison, `hold` fills one gateway with
tens of thousands of waiting calls, and `run` puts them together into one JSON line per scenario.
"""
