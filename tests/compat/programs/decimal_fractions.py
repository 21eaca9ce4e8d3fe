from decimal import ROUND_HALF_UP, Decimal, getcontext
from fractions import Fraction

getcontext().prec = 50
print(Decimal(1) / Decimal(7))
print(Decimal("2").sqrt())
print(Decimal("2.675").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), round(2.675, 2))
print(sum(Fraction(1, n) for n in range(1, 11)))
print(Fraction(3.75), Fraction("0.125").limit_denominator(), float(Fraction(22, 7)))
print(0.1 + 0.2, Decimal("0.1") + Decimal("0.2"))
