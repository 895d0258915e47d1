# Models arrive with their issue; the app is registered so its URLs and migrations have a home.
