import asyncio


async def step(n):
    await asyncio.sleep(0)
    if n == 3:
        raise KeyError(f"missing {n}")
    return n


async def main():
    results = []
    for n in range(5):
        results.append(await step(n))
        print("step", n, "done")
    return results


asyncio.run(main())
