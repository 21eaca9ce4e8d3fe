"""The scientific Python stack in the sandbox: each library imports and does one small real computation."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.calls import execute

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Generous: the first import of a large library in a fresh worker reads it from disk.
TIMEOUT_S = 30

CASES = {
    "numpy": ("import numpy as np\nprint(np.linalg.solve([[2, 1], [1, 3]], [3, 5]).round(6).tolist())", "[0.8, 1.4]"),
    "scipy": (
        "from scipy.optimize import minimize_scalar\nfrom scipy.integrate import quad\n"
        "print(round(minimize_scalar(lambda x: (x - 2) ** 2).x, 4), round(quad(lambda x: x * x, 0, 3)[0], 6))",
        "2.0 9.0",
    ),
    "sympy": (
        "import sympy as sp\nx = sp.Symbol('x')\n"
        "print(sp.integrate(sp.sin(x) ** 2, (x, 0, sp.pi)), sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2))",
        "pi/2 1",
    ),
    "mpmath": ("import mpmath\nmpmath.mp.dps = 30\nprint(mpmath.nstr(mpmath.pi, 20))", "3.1415926535897932385"),
    "pandas": (
        "import pandas as pd\ndf = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\n"
        "print(df.groupby('k')['v'].sum().to_dict())",
        "{'a': 4, 'b': 2}",
    ),
    "networkx": (
        "import networkx as nx\ng = nx.Graph()\ng.add_weighted_edges_from([(1, 2, 1), (2, 3, 1), (1, 3, 5)])\n"
        "print(nx.shortest_path(g, 1, 3, weight='weight'))",
        "[1, 2, 3]",
    ),
    "sklearn": (
        "from sklearn.linear_model import LinearRegression\n"
        "model = LinearRegression().fit([[0], [1], [2]], [1, 3, 5])\n"
        "print(round(float(model.coef_[0]), 6), round(float(model.intercept_), 6))",
        "2.0 1.0",
    ),
    "PIL": (
        "from PIL import Image\nImage.new('RGB', (4, 3), 'red').save('image.png')\n"
        "image = Image.open('image.png')\nprint(image.size, image.getpixel((0, 0)))",
        "(4, 3) (255, 0, 0)",
    ),
    "regex": ("import regex\nprint(regex.findall(r'\\p{Lu}+', 'abcDEFghiJK'))", "['DEF', 'JK']"),
    "sortedcontainers": (
        "from sortedcontainers import SortedList\nitems = SortedList([3, 1, 2])\nitems.add(0)\nprint(list(items))",
        "[0, 1, 2, 3]",
    ),
    "more_itertools": (
        "import more_itertools\nprint(list(more_itertools.chunked(range(5), 2)))",
        "[[0, 1], [2, 3], [4]]",
    ),
    "dateutil": (
        "from datetime import date\nfrom dateutil.relativedelta import relativedelta\n"
        "print(date(2024, 1, 31) + relativedelta(months=1))",
        "2024-02-29",
    ),
    "pytz": (
        "from datetime import datetime\nimport pytz\n"
        "print(pytz.timezone('Europe/Paris').localize(datetime(2024, 7, 1, 12)).isoformat())",
        "2024-07-01T12:00:00+02:00",
    ),
}


@pytest.mark.parametrize(("code", "stdout"), CASES.values(), ids=CASES.keys())
def test_library_imports_and_computes_in_the_sandbox(api: httpx.Client, code: str, stdout: str) -> None:
    result = execute(api, language="python", code=code, timeout_s=TIMEOUT_S)
    assert result["status"] == "ok", result
    assert result["stdout"] == stdout + "\n"
    assert result["stderr"] == ""


def test_matplotlib_draws_a_png_with_agg_in_the_working_directory(api: httpx.Client) -> None:
    code = (
        "import matplotlib\nimport matplotlib.pyplot as plt\n"
        "figure, axes = plt.subplots()\naxes.plot([0, 1, 2], [0, 1, 4], label='x²')\naxes.set_title('squares')\n"
        "axes.legend()\nfigure.savefig('plot.png')\nprint(matplotlib.get_backend())"
    )
    result = execute(api, language="python", code=code, timeout_s=TIMEOUT_S, fetch_files=["plot.png"])
    assert result["status"] == "ok", result
    assert result["stdout"] == "agg\n"
    # As on a plain machine: no complaint about a missing fontconfig or matplotlibrc.
    assert result["stderr"] == ""
    files = result["files"]
    assert isinstance(files, dict)
    png = base64.b64decode(files["plot.png"])
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
