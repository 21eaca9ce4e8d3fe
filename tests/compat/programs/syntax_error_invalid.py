print("this line is fine")
x = 5
if x = 5:
    print("equal")
