name = input("What is your name? ")
print("Hello,", name)
age = int(input("Age? "))
print(age)
