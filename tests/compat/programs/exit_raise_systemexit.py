print("finishing early")
raise SystemExit
