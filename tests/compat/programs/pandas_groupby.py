import pandas as pd

df = pd.DataFrame(
    {
        "team": ["a", "b", "a", "c", "b", "a"],
        "score": [10, 20, 30, 40, 50, 60],
        "weight": [1.0, 2.0, 0.5, 1.5, 1.0, 2.0],
    }
)
summary = df.groupby("team").agg(total=("score", "sum"), mean_weight=("weight", "mean"))
print(summary)
print(df.sort_values("score", ascending=False).head(3).to_string(index=False))
print(df.describe().round(3))
df.to_csv("scores.csv", index=False)
print(pd.read_csv("scores.csv").shape)
