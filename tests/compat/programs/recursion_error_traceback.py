def count_down(n):
    return count_down(n - 1) + 1 if n else 0


print(count_down(100))
print(count_down(5000))
