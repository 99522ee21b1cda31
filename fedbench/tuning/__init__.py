"""Fair tuning (python -m fedbench.tune): the search space (space), the staged search with its edge
extensions (search), the jobs it launches through the user's launcher (launch) and the stages of a
tune from the search to the reporting seeds (driver)."""
