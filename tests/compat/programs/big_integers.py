import math
import sys

print(len(str(math.factorial(1000))))
print(pow(3, 10**18, 10**9 + 7), pow(2, -1, 97))
big = 2**4096 - 1
print(big.bit_length(), big % 1_000_000_007, hex(big)[:20])
try:
    str(10**5000)
except ValueError as exc:
    print("limit:", exc)
sys.set_int_max_str_digits(0)
digits = str(3**50000)
print(len(digits), digits[:30], sum(map(int, digits)))
print((10**40 + 7) // 13, -(10**30) // 7, divmod(-(10**25), 12345))
