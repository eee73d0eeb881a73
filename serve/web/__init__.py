"""The HTTP side of `sciknow serve`: the API, access rules, agent endpoints, feedback."""
