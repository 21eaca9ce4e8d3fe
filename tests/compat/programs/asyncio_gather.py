import asyncio


async def fetch(i):
    await asyncio.sleep(0.01 * (5 - i % 5))
    return i * 10


async def main():
    results = await asyncio.gather(*(fetch(i) for i in range(10)))
    print(results)
    done = await asyncio.wait_for(fetch(3), timeout=1)
    print("wait_for", done)
    try:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)
    except TimeoutError:
        print("timed out as expected")


asyncio.run(main())
