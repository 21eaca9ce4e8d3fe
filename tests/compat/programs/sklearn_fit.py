from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
tree = DecisionTreeClassifier(random_state=0).fit(X_train, y_train)
print("tree accuracy", round(tree.score(X_test, y_test), 4))
model = LogisticRegression(max_iter=500).fit(X_train, y_train)
print("logistic accuracy", round(model.score(X_test, y_test), 4))
print(model.predict(X_test[:10]))
