"""Named tools: a registry in a data file (tools.json) and the programs it points to (programs/).

Each tool is a program that reads its JSON arguments on stdin and prints a JSON object; the gateway
validates the arguments against the tool's JSON schema and runs the program as an ordinary sandboxed
job. Adding a tool means adding one entry and one program file.
"""
