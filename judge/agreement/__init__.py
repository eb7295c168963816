"""Agreement statistics: how judges, reward models and human raters agree, per rubric axis.

``ratings`` (import and validation) needs only pydantic; the other modules need the ``stats`` extra
(numpy, scipy, scikit-learn, krippendorff, pingouin, matplotlib), so nothing here is imported eagerly.
"""
