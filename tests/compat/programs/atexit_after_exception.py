import atexit


def goodbye():
    print("goodbye from atexit", "__file__" in globals())


atexit.register(goodbye)
print("about to fail")
{}["missing"]
