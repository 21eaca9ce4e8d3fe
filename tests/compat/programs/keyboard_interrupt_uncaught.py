def long_computation():
    print("working")
    raise KeyboardInterrupt


long_computation()
