"""Session-wide set-up shared by every test folder.

The settings registry is process-wide and each server package adds its settings when its settings
module is imported. Importing all of them up front makes every test see the same registry whatever
order the tests run in.
"""

from tricorn.core.settings import load_package_settings

load_package_settings()
