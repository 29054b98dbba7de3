"""REST API v1 routes: the inventory's and governance's viewsets on one router."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()

urlpatterns = router.urls
