import sys


def solve(n):
    return sum(i * i for i in range(n))


def main():
    print(solve(10))
    print(solve(1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
