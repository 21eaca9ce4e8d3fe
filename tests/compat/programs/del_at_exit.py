class Resource:
    def __init__(self, name):
        self.name = name
        print("open", name)

    def __del__(self):
        print("close", self.name)


first = Resource("first")
temporary = Resource("temporary")
del temporary
print("end of script")
