import sys

words = {}
for line in sys.stdin:
    for word in line.lower().split():
        words[word] = words.get(word, 0) + 1
for word, count in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
    print(f"{word}: {count}")
