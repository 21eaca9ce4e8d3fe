def main():
    total = 0
    for i in range(10):
        total += i
      print(total)


main()
