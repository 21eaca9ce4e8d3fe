import sys

print("héllo wörld", "naïve", "日本語テキスト", "emoji: 🐍🚀", "Ω≈ç√∫")
print("combining: e\u0301 and RTL: שלום")
print("to stderr: ünïcödé ✓", file=sys.stderr)
print(sys.stdout.encoding, sys.stderr.encoding, sys.getdefaultencoding())
print(len("🐍"), len("🐍".encode()))
sys.stdout.write("surrogate: " + "\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "replace") + "\n")
