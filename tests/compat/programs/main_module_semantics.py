import os
import sys

print(__name__, __file__, __spec__, __package__, __doc__)
print(type(__builtins__).__name__, type(__loader__).__name__, __loader__.name, __loader__.path)
print([k for k in globals() if k.startswith("__")])
print(sys.argv, sys.path[0], os.getcwd())
print(sys.modules["__main__"] is sys.modules[__name__], hasattr(sys.modules["__main__"], "__file__"))
print(sys.executable, sys.flags.dont_write_bytecode, sys.flags.optimize)
